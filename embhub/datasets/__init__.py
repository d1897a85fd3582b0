"""Perturbation datasets: recipes that read real public files (plugins) and the prepared artifact they write."""
