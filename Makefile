# make up | cli | logs | destroy       the demo PBX (demo/docker-compose.yml)
# make build TARGET=mini|base DIST=alpine|debian IMAGE=pbx
# make test | lint | bench
TARGET ?= base
DIST ?= alpine
IMAGE ?= pbx
COMPOSE = docker compose -f demo/docker-compose.yml
export TARGET DIST IMAGE

.PHONY: build up cli logs destroy test unit lint bench

build:
	scripts/ensure-docker.sh
	scripts/build.sh $(TARGET) $(DIST) $(IMAGE)

up:
	scripts/up.sh

cli:
	$(COMPOSE) exec tele asterisk -rvvv

logs:
	$(COMPOSE) logs -f tele

destroy:
	$(COMPOSE) down -v

test:
	scripts/test.sh

unit:
	python3 -m pytest -q tests/unit

lint:
	ruff check . && ruff format --check .

bench:
	scripts/ensure-docker.sh
	scripts/images.sh
	python3 bench/run.py
