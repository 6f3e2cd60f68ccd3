from django.apps import AppConfig


class TagsConfig(AppConfig):
    name = "siyu.tags"
    label = "tags"

    def ready(self) -> None:
        from siyu.customers.references import MergeFollower, register_merge_follower
        from siyu.tags.push import marks_after_merge, marks_after_unmerge

        # A merge or unmerge changes which tags each WeCom follow relation should carry.
        register_merge_follower("tags", MergeFollower(merged=marks_after_merge, unmerged=marks_after_unmerge))
