"""claimpress: structured YAML claim files in, executive-summary fact-check pages out."""

__version__ = "0.1.0"
