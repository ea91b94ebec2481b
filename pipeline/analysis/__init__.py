"""What the runs say: rankings and fronts, findings, term effects, estimates and the HTML report."""
