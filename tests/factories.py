"""factory_boy factories for the fleet and its readings."""

from datetime import UTC, datetime

import factory

from readings.models import Reading
from sensors.choices import SensorType
from sensors.models import Asset, Sensor


class AssetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Asset

    name = factory.Sequence(lambda n: f"Test machine {n}")
    code = factory.Sequence(lambda n: f"TEST-{n:03d}")
    site = "North Plant"
    location = "Line 1 / Station 1"


class SensorFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Sensor

    sensor_id = factory.Sequence(lambda n: f"probe-{n:03d}")
    asset = factory.SubFactory(AssetFactory)
    sensor_type = SensorType.TEMPERATURE
    unit = "°C"
    normal_min = 10.0
    normal_max = 80.0


class ReadingFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Reading

    sensor = factory.SubFactory(SensorFactory)
    time = factory.Sequence(lambda n: datetime(2026, 1, 1, tzinfo=UTC).replace(minute=n % 60, hour=(n // 60) % 24))
    value = 42.0
