"""The groups of docs/admin.md ("People and permissions"): Maintenance manager, Technician, Viewer.

Rerunning adds what a group lacks and never removes what staff gave it since.
"""

from django.db import migrations

VIEW = [
    "maintenance.view_workorder",
    "maintenance.view_workorderevent",
    "maintenance.view_attachment",
    "maintenance.view_finding",
    "sensors.view_asset",
    "sensors.view_sensor",
    "readings.view_reading",
    "readings.view_faultlabel",
    "mlops.view_alert",
    "mlops.view_anomaly",
]
TECHNICIAN = VIEW + [
    "maintenance.work_on_workorder",
    "maintenance.add_workorderevent",
    "maintenance.add_attachment",
    "maintenance.add_finding",
]
MANAGER = TECHNICIAN + [
    "maintenance.add_workorder",
    "maintenance.change_workorder",
    "maintenance.delete_workorder",
    "maintenance.change_finding",
    "maintenance.delete_attachment",
    "mlops.change_alert",
    "mlops.view_alertsubscription",
    "mlops.add_alertsubscription",
    "mlops.change_alertsubscription",
    "mlops.view_scoringrun",
    "sensors.add_asset",
    "sensors.change_asset",
    "sensors.add_sensor",
    "sensors.change_sensor",
    "sensors.view_usersites",
    "sensors.add_usersites",
    "sensors.change_usersites",
    "readings.add_faultlabel",
    "readings.change_faultlabel",
    "readings.delete_faultlabel",
]
GROUPS = {"Maintenance manager": MANAGER, "Technician": TECHNICIAN, "Viewer": VIEW}


def create_groups(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    # Permissions are made by post_migrate, after every migration: make them now, on a fresh database too.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0, using=schema_editor.connection.alias)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    db = schema_editor.connection.alias
    for name, codes in GROUPS.items():
        group, _ = Group.objects.using(db).get_or_create(name=name)
        for code in codes:
            app_label, codename = code.split(".")
            permission = (
                Permission.objects.using(db).filter(content_type__app_label=app_label, codename=codename).first()
            )
            if permission is not None:
                group.permissions.add(permission)


def remove_groups(apps, schema_editor):
    apps.get_model("auth", "Group").objects.using(schema_editor.connection.alias).filter(name__in=GROUPS).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("maintenance", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("sensors", "0004_usersites"),
        ("readings", "0004_faultlabel_normal_staff"),
        ("mlops", "0006_scoringrun_readings"),
    ]

    operations = [migrations.RunPython(create_groups, remove_groups)]
