# Thin wrappers: the logic lives in scripts/.
.PHONY: test demo bench package bootstrap clean-local redrive

test:
	bash scripts/test.sh

demo:
	bash scripts/demo.sh

bench:
	bash scripts/bench.sh
loadbench: ; bash scripts/bench.sh load $(LOADBENCH_ARGS)

# sam build for Lambda (arm64) with the project's cargo-lambda; prints the zip sizes.
package:
	bash scripts/package.sh

# Dead-lettered leads back to the lead queue (docs/runbook.md): STACK=... or DLQ_URL=... LEAD_QUEUE_URL=...
redrive:
	bash scripts/redrive.sh

bootstrap:
	bash scripts/bootstrap.sh

clean-local:
	rm -rf .local
