"""What the runs say: rankings and fronts, findings, term effects, intervals and the HTML report."""
