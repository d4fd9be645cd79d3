# Thin wrappers: the logic lives in scripts/.
.PHONY: test demo bench bootstrap clean-local

test:
	bash scripts/test.sh

demo:
	bash scripts/demo.sh

bench:
	bash scripts/bench.sh

bootstrap:
	bash scripts/bootstrap.sh

clean-local:
	rm -rf .local
