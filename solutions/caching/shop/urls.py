from django.urls import path

from shop import views

urlpatterns = [
    path("products/<int:pk>/", views.product_detail, name="product-detail"),
    path("categories/<slug:slug>/products/", views.category_products, name="category-products"),
    path("bestsellers/", views.bestsellers, name="bestsellers"),
    path("me/dashboard/", views.my_dashboard, name="my-dashboard"),
    path("me/orders/", views.my_orders, name="my-orders"),
]
