# Thin wrappers: the logic lives in scripts/.
.PHONY: test demo bootstrap clean-local

test:
	bash scripts/test.sh

demo:
	bash scripts/demo.sh

bootstrap:
	bash scripts/bootstrap.sh

clean-local:
	rm -rf .local
