"""scoring_due: the ingest side's cheap question before it queues a scoring run (a window completed since the
watermark, or a sensor with readings never scored)."""

from datetime import UTC, datetime, timedelta

import pytest

from mlops.models import ScoringWatermark
from mlops.selectors import scoring_due
from readings.models import Reading
from tests.factories import SensorFactory

pytestmark = pytest.mark.django_db

WINDOW = 10


def readings(sensor, start: datetime, count: int) -> None:
    Reading.objects.bulk_create(
        Reading(sensor=sensor, time=start + timedelta(seconds=sensor.sampling_interval * i), value=1.0)
        for i in range(count)
    )


def test_due_when_a_window_after_the_watermark_has_ended_with_its_last_reading_in():
    sensor = SensorFactory(sampling_interval=10)
    assert not scoring_due(window=WINDOW)  # no readings at all
    mark = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    readings(sensor, mark - timedelta(seconds=100), 10)
    assert scoring_due(window=WINDOW), "readings never scored"

    ScoringWatermark.objects.create(sensor=sensor, scored_until=mark)
    assert not scoring_due(window=WINDOW), "nothing after the watermark"
    readings(sensor, mark, 9)
    assert not scoring_due(window=WINDOW), "the window's last reading is not in"
    readings(sensor, mark + timedelta(seconds=90), 1)
    assert scoring_due(window=WINDOW)

    # A window still running (its end after now) is not due, even with a reading in its last slot.
    ScoringWatermark.objects.filter(sensor=sensor).update(scored_until=datetime.now(UTC) - timedelta(seconds=50))
    readings(sensor, datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=40), 1)
    assert not scoring_due(window=WINDOW)
    # Inactive sensors are never scored, so never due.
    ScoringWatermark.objects.filter(sensor=sensor).update(scored_until=mark)
    sensor.status = "inactive"
    sensor.save()
    assert not scoring_due(window=WINDOW)
