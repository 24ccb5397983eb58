.PHONY: run test bench demo
run:
	./dev run
demo:
	DEMO=1 ./dev run
test:
	./dev test
bench:
	./dev bench
