# lower-cases after the substitution, when the capitals are already gone
sed -i 's/return slug.strip("-")/return slug.strip("-").lower()/' slugify.py
