from rest_framework.routers import SimpleRouter

from sensors.api.views import AssetViewSet, SensorViewSet

router = SimpleRouter(trailing_slash=False)
router.register("assets", AssetViewSet)
router.register("sensors", SensorViewSet)

urlpatterns = router.urls
