from django.urls import path

from catalog import views

urlpatterns = [
    path("books/", views.book_list, name="book-list"),
    path("books/<int:pk>/", views.book_detail, name="book-detail"),
    path("books/<int:pk>/reviews/", views.create_review, name="book-reviews"),
    path("reviews/", views.ReviewFeed.as_view(), name="review-feed"),
]
