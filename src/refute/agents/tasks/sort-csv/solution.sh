{ head -n 1 scores.csv; tail -n +2 scores.csv | sort -t, -k3,3nr; } > sorted.csv
