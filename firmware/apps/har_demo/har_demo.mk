# ---- har_demo (apps/har_demo/har_demo.c): activity changes, accuracy and instructions on a held-out stream ----
# Included by firmware/Makefile. HAR_DIR: the export folder whose model.c / model.h (a graph, `edgemem export
# --to c`) are compiled in; use another BUILD for another HAR_DIR (the outputs do not track it). The data file comes
# from `python -m edgemem.demo.har_firmware` (top-level `make firmware-demo` writes it and runs the QEMU image).
HAR_DIR ?= ../export/har_l2mu
HAR_DATA ?= $(BUILD)/har_demo/data.bin
ARM_NM ?= arm-none-eabi-nm
# the deliberately too-small maps of har-demo-overflow (nRF52832 otherwise)
HAR_SMALL_RAM ?= 1K
HAR_SMALL_FLASH ?= 8K
# the compiled-in model is bound (no parser); em_status.c names a status in the demo's error lines
HAR_RT = $(BIND_SRC) src/em_status.c $(GRAPH_KERNELS)
HAR_KERNELS = $(shell sed -n 's/^\#define EM_MODEL_GRAPH_KERNELS \(0x[0-9a-fA-F]*\)u.*/\1/p' $(HAR_DIR)/model.h)
HAR_DEFS = $(if $(HAR_KERNELS),-DEM_GRAPH_KERNELS=$(HAR_KERNELS))
# 1 when HAR_DIR holds a graph export (model.h says EM_MODEL_FORMAT 2); anything else does not compile (har_demo.c)
HAR_GRAPH := $(shell grep -Eqs 'define[[:space:]]+EM_MODEL_FORMAT[[:space:]]+2([^0-9]|$$)' $(HAR_DIR)/model.h && echo 1)
HAR_SRC = apps/har_demo/har_demo.c $(HAR_RT) $(HAR_DIR)/model.c
HAR_CFLAGS = -Iapps/har_demo -I$(HAR_DIR) -DHD_MODEL_NAME='"$(notdir $(abspath $(HAR_DIR)))"' $(HAR_DEFS)
HAR_DEPS = $(HAR_SRC) $(HAR_DIR)/model.h apps/har_demo/har_demo_platform.h apps/har_demo/har_demo.mk $(HDRS)
# the same objects on every Cortex-M4 image: startup (no newlib exit: the platform ends through semihosting),
# raw semihosting I/O; nano + nosys only for memset/memcpy, no stdio
HAR_M4_SRC = $(HAR_SRC) targets/cortex_m4/startup.c targets/cortex_m4/har_demo_semihost.c
HAR_M4_CFLAGS = $(M4_CFLAGS) -DEM_STARTUP_NO_EXIT $(HAR_CFLAGS)
# stack reserved on the nRF52 maps (bytes): em_graph_step needs about 300 (README "Stack"), the demo's own frames
# far less than the rest; 4 KiB leaves room for exception stacking and a caller's frames
HAR_STACK ?= 4096
HAR_NRF_LDFLAGS = $(M4_ARCH) -nostartfiles -Wl,--gc-sections -Ltargets/nrf52 -Wl,--defsym=__stack_size__=$(HAR_STACK) \
                  --specs=nano.specs --specs=nosys.specs

.PHONY: har-demo har-demo-host har-demo-fit har-demo-overflow har-demo-run har-demo-vars-force har-demo-fit-test

har-demo: $(BUILD)/m4/har_demo.elf
har-demo-host: $(BUILD)/host/har_demo

$(BUILD)/host/har_demo: $(HAR_DEPS) targets/host/har_demo_host.c
	@mkdir -p $(@D)
	$(HOST_CC) $(HOST_CFLAGS) $(HAR_CFLAGS) -o $@ $(HAR_SRC) targets/host/har_demo_host.c

$(BUILD)/m4/har_demo.elf: $(HAR_DEPS) $(HAR_M4_SRC) targets/cortex_m4/mps2_an386.ld
	@mkdir -p $(@D)
	$(ARM_CC) $(HAR_M4_CFLAGS) $(M4_LDFLAGS) --specs=nano.specs --specs=nosys.specs \
	    -Wl,-Map=$(BUILD)/m4/har_demo.map -o $@ $(HAR_M4_SRC)

# HAR_STACK and HAR_DIR as a file that changes only when they do, so the nRF images relink when either changes
HAR_NRF_VARS = $(BUILD)/har_demo/nrf_vars
$(HAR_NRF_VARS): har-demo-vars-force
	@mkdir -p $(@D)
	@echo '$(HAR_STACK) $(abspath $(HAR_DIR))' | cmp -s - $@ || echo '$(HAR_STACK) $(abspath $(HAR_DIR))' > $@
har-demo-vars-force:

# The same sources linked for the two watch chips (linked only, never run: QEMU has no nRF52 board).
$(BUILD)/nrf52832/har_demo.elf $(BUILD)/nrf52840/har_demo.elf: $(BUILD)/%/har_demo.elf: $(HAR_DEPS) $(HAR_M4_SRC) \
        targets/nrf52/%.ld targets/nrf52/nrf52_common.ld $(HAR_NRF_VARS)
	@mkdir -p $(@D)
	$(ARM_CC) $(HAR_M4_CFLAGS) $(HAR_NRF_LDFLAGS) -T targets/nrf52/$*.ld -Wl,-Map=$(@D)/har_demo.map \
	    -o $@ $(HAR_M4_SRC)

# Sizes and margins against each chip (budgets read from the link map), heap-less check, then the overflow proof.
har-demo-fit: $(BUILD)/nrf52832/har_demo.elf $(BUILD)/nrf52840/har_demo.elf
	@for c in nrf52832 nrf52840; do \
	    sh targets/nrf52/fit_report.sh $$c $(BUILD)/$$c/har_demo.elf $(BUILD)/$$c/har_demo.map $(ARM_SIZE) $(ARM_NM) \
	        || exit 1; \
	done
	@$(MAKE) --no-print-directory har-demo-overflow

# The link must fail when the demo does not fit: nRF52832 maps with RAM cut to HAR_SMALL_RAM, then FLASH cut to
# HAR_SMALL_FLASH; each must stop with ld's "region `X' overflowed".
har-demo-overflow: $(HAR_DEPS) $(HAR_M4_SRC) targets/nrf52/nrf52_common.ld
	@mkdir -p $(BUILD)/nrf52_small
	@set -e; for r in RAM FLASH; do \
	    if [ $$r = RAM ]; then f=512K; m=$(HAR_SMALL_RAM); else f=$(HAR_SMALL_FLASH); m=64K; fi; \
	    printf 'MEMORY\n{\n    FLASH (rx) : ORIGIN = 0x00000000, LENGTH = %s\n    RAM (rwx) : ORIGIN = 0x20000000, LENGTH = %s\n}\nINCLUDE nrf52_common.ld\n' \
	        $$f $$m > $(BUILD)/nrf52_small/small_$$r.ld; \
	    if $(ARM_CC) $(HAR_M4_CFLAGS) $(HAR_NRF_LDFLAGS) -T $(BUILD)/nrf52_small/small_$$r.ld \
	        -o $(BUILD)/nrf52_small/har_demo_$$r.elf $(HAR_M4_SRC) > $(BUILD)/nrf52_small/link_$$r.log 2>&1; then \
	        echo "har-demo-overflow: the link with FLASH $$f / RAM $$m succeeded; it must fail"; exit 1; \
	    fi; \
	    grep -q "region \`$$r' overflowed" $(BUILD)/nrf52_small/link_$$r.log || \
	        { cat $(BUILD)/nrf52_small/link_$$r.log; echo "har-demo-overflow: no $$r overflow message"; exit 1; }; \
	    echo "har-demo-overflow: FLASH $$f / RAM $$m: $$(grep -o "region \`$$r' overflowed by [0-9]* bytes" \
	        $(BUILD)/nrf52_small/link_$$r.log | head -n 1) (the link fails, as it must)"; \
	done

# The QEMU image on a prepared data file: har-demo-run HAR_DATA=path (paths without spaces: semihosting).
har-demo-run: $(BUILD)/m4/har_demo.elf
	@QEMU=$(QEMU) sh targets/cortex_m4/run_qemu.sh $< $(HAR_DATA)

# `make test` also proves the fit (links only: no data file, no Python needed). An export folder that is not a
# graph yet (written before the graph format) is skipped with a message, and fails under CI=true.
test: har-demo-fit-test
har-demo-fit-test:
ifeq ($(HAR_GRAPH),1)
	@$(MAKE) --no-print-directory har-demo-fit
else
	@echo "har-demo-fit: $(HAR_DIR)/model.h is not a graph export (EM_MODEL_FORMAT 2): re-export it with" \
	    '`edgemem export CHECKPOINT --to c`; skipped'; test "$$CI" != true
endif
