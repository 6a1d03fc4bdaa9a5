# lower-cases the whole name, not just the extension
cd photos
for f in *; do
  new="$(printf '%s' "$f" | tr '[:upper:]' '[:lower:]')"
  if [ "$f" != "$new" ]; then mv -- "$f" "$new"; fi
done
