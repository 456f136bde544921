# The ML-1M study's model and optimiser settings, sourced by ml1m_kinds.sh (which adds the
# schedule: --epochs 200 --eval-every 20) and ml1m_memory.sh (one epoch), so that both run the
# same configurations. Needs DATA. Each ends before the schedule flags, which the sweeps' recorded
# arguments keep in this order: <settings> --epochs 200 --eval-every 20 --full-ranking.
#
# The SASRec paper's settings (Kang & McAuley, ICDM 2018, Sec. IV-C) for the SASRec kinds.
SASREC_SETTINGS="--data $DATA --dim 50 --blocks 2 --heads 1 --maxlen 200 --dropout 0.2 \
--lr 0.001 --batch 128"
# The official LISA code's ML-1M settings (Wu et al., WWW 2021): width 128, one layer, dropout
# 0.1, lr 1e-3, 200 epochs, Adam betas (0.9, 0.98) as in all our runs. Its positional table
# has 300 rows; here maxlen 200, as in SASRec's.
LISA_SETTINGS="--data $DATA --dim 128 --maxlen 200 --dropout 0.1 --lr 0.001 --batch 128"
# Tuned on validation (docs/results.md, "LISA-Soft: closing the gap"): lr 2e-3 at width 50.
TUNED_SETTINGS="--data $DATA --dim 50 --maxlen 200 --dropout 0.2 --lr 0.002 --batch 128"
