# make test : install what is missing, then run the test suite (what CI runs)
# make app  : install what is missing, then open the app on http://localhost:8501
# make app-public : the same for a classroom: every network interface, the addresses to share printed
.PHONY: install test app app-public

install:
	bash scripts/install.sh

test:
	bash scripts/install.sh --test
	python3 -m pytest -q

app: install
	python3 app/serve.py --server.address localhost --server.headless true

app-public: install
	python3 app/serve.py --public --server.headless true
