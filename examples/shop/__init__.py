"""An example products/orders service on nxdata: declarations in `shop.models`, the Litestar app
in `shop.app`, the HTTP error mapping (RFC 9457 problem details) in `shop.problems`."""
