"""Command-line data scripts (network, archives, feature extraction). The package never imports these."""
