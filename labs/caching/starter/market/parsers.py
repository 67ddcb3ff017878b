"""JSON request bodies: whatever a client sends, a body the service cannot use is a 400, never a 500."""
import json

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


class SafeJSONParser(JSONParser):
    """DRF's JSONParser, which already turns bad JSON (a ValueError) into 400, plus two bodies it lets through.

    - Nesting too deep for Python's recursion limit (`[[[[...]]]]` a thousand deep) raises RecursionError,
      which DRF does not catch: the client would get a 500 for a 2 kB body.
    - JSON may spell a lone surrogate (`"\\ud800"`), which is not text: it cannot be encoded as UTF-8, so an
      answer that echoes it (a "not a valid choice" error), or a database write no validator stopped, is a 500.
    """

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
            json.dumps(data, ensure_ascii=False).encode("utf-8")  # walks every string, keys included
        except RecursionError:
            raise ParseError("JSON parse error - the body is nested too deeply.") from None
        except UnicodeEncodeError:  # a lone surrogate somewhere in the body
            raise ParseError("JSON parse error - the body holds a string that is not valid Unicode text.") from None
        return data
