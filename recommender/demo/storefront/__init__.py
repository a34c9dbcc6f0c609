"""The demo storefront: a shop front that calls the API from the browser with shopper tokens."""
