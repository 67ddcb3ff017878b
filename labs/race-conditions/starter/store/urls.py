from django.urls import path

from store import views

urlpatterns = [
    path("products/<int:pk>/", views.product_detail, name="product-detail"),
    path("orders/", views.create_order, name="order-create"),
    path("orders/<int:pk>/", views.order_detail, name="order-detail"),
    path("wallets/<int:pk>/", views.wallet_detail, name="wallet-detail"),
    path("wallets/<int:pk>/topup/", views.top_up, name="wallet-topup"),
    path("transfers/", views.create_transfer, name="transfer-create"),
]
