# The two commands of the quick start; see README.md. Both use the checkout's own virtual
# environment, .venv (made by scripts/deps): runtime dependencies for `run`, plus the test extras
# for `test` and `bench`.
.PHONY: run test bench bench-infra
run:
	scripts/run

test:
	scripts/test

bench:
	scripts/deps --test
	.venv/bin/python bench/api.py
	.venv/bin/python bench/infra.py

bench-infra:
	scripts/deps --test
	.venv/bin/python bench/infra.py
