cd photos
for f in *.*; do
  ext="${f##*.}"
  low="$(printf '%s' "$ext" | tr '[:upper:]' '[:lower:]')"
  if [ "$ext" != "$low" ]; then mv -- "$f" "${f%.*}.$low"; fi
done
