# Two entry points, each doing all of its own set-up from nothing:
#   make run   - the main job: quick grid -> optimal-k fit -> figures
#   make test  - ruff + the test suite, both tiers (`make test-fast`: ruff + the tests not marked slow)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: run test test-fast bench reference configs standard regime composition adaptive law active-compute sraven sraven-converge sraven-regime estimators clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch first, pinned: pip then takes the local CPU wheel instead of a multi-GB CUDA build.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install "torch==2.13.0"
	$(BIN)/python -m pip install -e ".[dev,ray]"
	touch $(STAMP)

SOFTMOE := results/softmoe/single_expert/manifest.json results/softmoe/expert_drop/manifest.json

run: $(STAMP) $(SOFTMOE)
	$(BIN)/python -m simulations.grid --resume --workers 2
	$(BIN)/python -m fits.optimal_k
	$(BIN)/python -m figures

# The Soft MoE (P3) quick experiments; each is skipped once its results exist (`make clean` redoes them).
results/softmoe/%/manifest.json: $(STAMP)
	$(BIN)/python -m simulations.families.softmoe $(subst _,-,$*) --out results/softmoe/$* --overwrite

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

test-fast: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -m "not slow"

# configs/*.yaml: the generated copies of the regression presets (simulations/families/regression/presets/,
# the one place a preset is edited); run after editing a preset.
configs: $(STAMP)
	$(BIN)/python -m simulations.families.regression.copies

# The answer per router arm (the standard preset, ~14 min on 2 cores) and the regime sweep of learned
# routers (simulations/families/regression/presets/regime.yaml), summarised by `python -m fits.regime`; each resumes,
# and `python -m figures` then draws regime_map.
standard: $(STAMP)
	$(BIN)/python -m simulations.grid --preset standard --resume
	$(BIN)/python -m fits.optimal_k results/standard --out results/fits-standard

regime: $(STAMP)
	$(BIN)/python -m simulations.families.regression.regime
	$(BIN)/python -m fits.regime results/regime --out results/fits-regime

# Issue 20's comparison: every gate family on the contextual task beside the oracle (the composition preset,
# ~20 min on 2 cores), the same on the compositional task, and the gate map of each; then adaptive k
# (the adaptive preset, ~3 min): mean experts per input by the input's s.
composition: $(STAMP)
	$(BIN)/python -m simulations.grid --preset composition --resume
	$(BIN)/python -m fits.optimal_k results/composition --out results/fits-composition
	$(BIN)/python -m figures --results results/composition --fits results/fits-composition --only gate_map routing_gain --out figures/out/composition
	$(BIN)/python -m simulations.grid --preset composition --resume --set task=compositional --out results/composition-compositional
	$(BIN)/python -m fits.optimal_k results/composition-compositional --out results/fits-composition-compositional

adaptive: $(STAMP)
	$(BIN)/python -m simulations.grid --preset adaptive --resume
	$(BIN)/python -m fits.optimal_k results/adaptive --out results/fits-adaptive

# Issue 21's law of k* over s, m and h (the law preset: the learned arm over s x m x h, the teacher-experts
# arm over s x m; wall time in docs/reference/law/provenance.json), each fitted on ID and on OOD error (the OOD fits
# leave out s = 1, which has no held-out combinations).
law: $(STAMP)
	$(BIN)/python -m simulations.grid --preset law --resume
	$(BIN)/python -m simulations.grid --preset law --resume --set experts=teacher --set width=4 \
		--out results/law-teacher
	$(BIN)/python -m fits.optimal_k results/law --out results/fits-law --metric id
	$(BIN)/python -m fits.optimal_k results/law --out results/fits-law-ood
	$(BIN)/python -m fits.optimal_k results/law-teacher --out results/fits-law-teacher --metric id
	$(BIN)/python -m fits.optimal_k results/law-teacher --out results/fits-law-teacher-ood

# k* at fixed active compute k h (the active_compute preset) beside k* at fixed h (the law preset).
active-compute: $(STAMP)
	$(BIN)/python -m simulations.grid --preset active_compute --resume
	$(BIN)/python -m fits.optimal_k results/active_compute --out results/fits-active-compute --metric id

# P1's SRAVEN task: the learnable preset (column tokens, the one setting that leaves the plateau on the CPU;
# docs/sraven.md), its fits on whole-problem and per-feature OOD error, and the two SRAVEN figures.
# Issue 27's estimator map (docs/tasks.md, "Estimators"): each gradient estimator of the learned router, with
# learned and with teacher experts, beside the oracle, on the contextual and the compositional task; then a
# single-skill phase first, the router started at the teacher's selection, and gate values on their own.
# Five stores, each resumed; fits and the estimator_map figure per store (wall time: docs/reference/*/provenance.json).
ESTIMATOR_STORES := estimators estimators-compositional estimators-single-skill estimators-teacher-init gate_values
estimators: $(STAMP)
	$(BIN)/python -m simulations.grid --preset estimators --resume
	$(BIN)/python -m simulations.grid --preset estimators --resume --set task=compositional \
		--out results/estimators-compositional
	$(BIN)/python -m simulations.grid --preset estimators_single_skill --resume
	$(BIN)/python -m simulations.grid --preset estimators --resume --set router_init=teacher \
		--set 'estimator=[pathwise,score]' --set 'complexity=[2,4]' --set 'k=[2,4,8]' --out results/estimators-teacher-init
	$(BIN)/python -m simulations.grid --preset gate_values --resume
	for s in $(ESTIMATOR_STORES); do \
		$(BIN)/python -m fits.optimal_k results/$$s --out results/fits-$$s --metric id --no-theory && \
		$(BIN)/python -m figures --results results/$$s --fits results/fits-$$s --only estimator_map gate_map \
			--out figures/out/$$s || exit 1; \
	done

sraven: $(STAMP)
	$(BIN)/python -m simulations.families.sraven --preset learnable --resume
	$(BIN)/python -m fits.optimal_k results/sraven-learnable --out results/fits-sraven
	$(BIN)/python -m fits.optimal_k results/sraven-learnable --out results/fits-sraven-feat --metric feat_ood
	$(BIN)/python -m figures --sraven results/sraven-learnable --only sraven_accuracy sraven_kstar

# Issue 29's converge preset (docs/sraven.md, "The converge preset"): trained to a plateau, the score
# function beside pathwise; fits per estimator on whole-problem and per-feature OOD error (fits --where),
# then its learning curves, accuracy against k and k* against R. At most ~50 min on 2 cores (dry run).
SRAVEN_CONVERGE_FITS := score: score-feat:--metric=feat_ood pathwise: pathwise-feat:--metric=feat_ood
sraven-converge: $(STAMP)
	$(BIN)/python -m simulations.families.sraven --preset converge --resume
	for fit in $(SRAVEN_CONVERGE_FITS); do \
		name=$${fit%%:*}; extra=$$(echo $${fit#*:} | tr = ' '); est=$${name%%-*}; \
		$(BIN)/python -m fits.optimal_k results/sraven-converge --where estimator=$$est $$extra \
			--out results/fits-sraven-converge-$$name || exit 1; \
	done
	$(BIN)/python -m figures --sraven results/sraven-converge --sraven-fits results/fits-sraven-converge-score \
		--sraven-curves results/sraven-converge --only sraven_converge sraven_accuracy sraven_kstar \
		--out figures/out/sraven-converge

# Issue 29's SRAVEN regime rows (docs/sraven.md, "Regime map on the CPU"): the learnable preset (column tokens)
# at k = 2, R = 4, seed 0, 800 steps, one setting varied per row, learning curves into
# results/sraven-regime/LABEL (a row whose rows.parquet exists is finished and skipped; a partial one is
# rerun from the start); then the sraven_regime figure. Not run yet (no numbers in the docs).
SRAVEN_REGIME_ROWS := baseline: depth3:n_blocks=3 width64:d_model=64,d_expert=64 batch128:batch=128 \
	F2:n_features=2 F3:n_features=3 V6:n_values=6 V12:n_values=12
sraven-regime: $(STAMP)
	for row in $(SRAVEN_REGIME_ROWS); do \
		label=$${row%%:*}; sets=$${row#*:}; \
		if [ -f results/sraven-regime/$$label/rows.parquet ]; then echo "sraven-regime: $$label done"; continue; fi; \
		$(BIN)/python -m simulations.families.sraven.curves --preset learnable --k 2 --n-rules 4 --seeds 0 \
			--steps 800 --eval-every 100 --n-eval 256 --threads 1 --label $$label \
			--out results/sraven-regime/$$label --overwrite $$(for s in $$(echo $$sets | tr , ' '); do echo --set $$s; done) \
			|| exit 1; \
	done
	$(BIN)/python -m figures --sraven-regime results/sraven-regime --only sraven_regime

# Every reference result in docs/reference/ (fits/references.py lists them): runs or resumes each preset's
# grids, fits them and writes docs/reference/<name>/ with provenance; refused from a tree with uncommitted
# changes. `make reference ARGS=--dry-run` prints each grid's estimated time; ARGS="law quick" picks some.
reference: $(STAMP)
	$(BIN)/python -m fits.references $(ARGS)

bench: $(STAMP)
	$(BIN)/python bench/layer.py
	$(BIN)/python bench/theory.py

clean:
	rm -rf results figures/out
