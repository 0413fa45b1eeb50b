"""Calibrated AWGN BLER fits, written by `benchmarks/digital_link_calibration.py` (do not edit by hand).

`BLER_TABLES[f"{modulation}@{code_rate:.4f}"][str(block_bits)] = [snr50_db, width_db]`: the block error rate of
the full chain (`DigitalLink.run_blocks`) is fitted as `Q((snr_db - snr50_db) / width_db)` by maximum likelihood.
"""

BLER_TABLES = {'16qam@0.3691': {'1024': [4.0738, 0.2945], '256': [4.0065, 0.5241]},
 '16qam@0.5000': {'1024': [6.2949, 0.3201], '256': [6.294, 0.6373]},
 '16qam@0.6016': {'1024': [7.8788, 0.3766], '256': [7.7231, 0.5663]},
 '64qam@0.5049': {'1024': [10.7839, 0.3183], '256': [10.7694, 0.6261]},
 '64qam@0.7021': {'1024': [14.418, 0.3873], '256': [14.4192, 0.5327]},
 '64qam@0.8887': {'1024': [18.0786, 0.3839], '256': [17.8752, 0.8422]},
 'qpsk@0.2451': {'1024': [-2.9902, 0.2062], '256': [-3.0876, 0.5444]},
 'qpsk@0.5137': {'1024': [1.1885, 0.2727], '256': [1.1404, 0.5036]}}
