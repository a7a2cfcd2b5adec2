from rest_framework.routers import SimpleRouter

from maintenance.api.views import WorkOrderViewSet

router = SimpleRouter(trailing_slash=False)
router.register("work-orders", WorkOrderViewSet, basename="work-order")

urlpatterns = router.urls
