from django.urls import path

from tickets import views

urlpatterns = [
    path("events/", views.event_list, name="event-list"),
    path("events/<int:pk>/", views.event_detail, name="event-detail"),
    path("carts/", views.cart_create, name="cart-create"),
    path("carts/<str:cart_id>/", views.cart_detail, name="cart-detail"),
    path("carts/<str:cart_id>/items/", views.cart_add, name="cart-add"),
    path("carts/<str:cart_id>/checkout/", views.cart_checkout, name="cart-checkout"),
    path("orders/", views.order_list, name="order-list"),
]
