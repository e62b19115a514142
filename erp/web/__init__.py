"""The activation web page: `GET/POST /activate`, served by the ERP and reached at the public name."""

from erp.web.routes import router

__all__ = ["router"]
