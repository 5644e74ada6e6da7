"""Suite-wide settings. Published runs render their reports (`allpayer.reports.publish.on_publish`);
tests that do not look at reports skip that work. Tests of rendering on publish set it back on."""

import os

os.environ.setdefault("ALLPAYER_RENDER_REPORTS", "0")
