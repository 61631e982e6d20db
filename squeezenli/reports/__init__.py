"""Reports people look at: self-contained HTML pages (no network, no external scripts, fonts
or styles) of `check`'s rows and of `eval`'s figures. They sit above the tasks, beside the
CLI: they take result rows and reports as the tasks shape them."""
