from django.urls import path

from billing import views

urlpatterns = [
    path("auth/login/", views.login, name="login"),
    path("auth/logout/", views.logout, name="logout"),
    path("me/", views.Me.as_view(), name="me"),
    path("users/", views.UserList.as_view(), name="user-list"),
    path("users/<int:pk>/", views.UserDetail.as_view(), name="user-detail"),
    path("invoices/", views.InvoiceList.as_view(), name="invoice-list"),
    path("invoices/search/", views.search_invoices, name="invoice-search"),
    path("invoices/<int:pk>/", views.InvoiceDetail.as_view(), name="invoice-detail"),
    path("webhooks/", views.WebhookList.as_view(), name="webhook-list"),
    path("webhooks/<int:pk>/ping/", views.ping_webhook, name="webhook-ping"),
    path("admin/users/", views.AdminUserList.as_view(), name="admin-user-list"),
]
