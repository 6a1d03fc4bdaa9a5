awk '$9 == 404 {print $1}' access.log | sort -u | wc -l
