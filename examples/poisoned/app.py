import sys

import app_helpers

print(app_helpers.greeting())
print("distutils shim installed:", any(type(f).__name__ == "DistutilsMetaFinder" for f in sys.meta_path))
