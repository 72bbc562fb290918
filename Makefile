# The two commands of the quick start; see README.md.
.PHONY: run test bench
run:
	scripts/run

test:
	scripts/test

bench:
	python3 bench/api.py
