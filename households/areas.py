"""Areas: district → street → community, and the demo district."""

from __future__ import annotations

from typing import Any

from households.tables import Community, District, Street

# Nanjing Qixia District: its real streets, each with a few of its communities.
DEMO_DISTRICT = ("320113", "栖霞区")
DEMO_STREETS: dict[str, tuple[str, list[str]]] = {
    "尧化街道": ("320113001", ["尧化门社区", "新尧社区", "尧林仙居社区"]),
    "马群街道": ("320113002", ["马群社区", "百水社区", "花岗社区"]),
    "迈皋桥街道": ("320113003", ["迈皋桥社区", "华电社区", "和燕路社区"]),
    "燕子矶街道": ("320113004", ["燕子矶社区", "吉祥庵社区", "和燕社区"]),
    "仙林街道": ("320113005", ["仙林社区", "文苑社区", "仙鹤社区"]),
    "栖霞街道": ("320113006", ["栖霞社区", "摄山社区", "甘家巷社区"]),
    "龙潭街道": ("320113007", ["龙潭社区", "港城社区", "营防社区"]),
    "八卦洲街道": ("320113008", ["外沙社区", "中桥社区", "七里社区"]),
    "西岗街道": ("320113009", ["西岗社区", "桦墅社区", "青龙社区"]),
}


async def seed_demo_areas() -> dict[str, Any]:
    """Create the demo district with its streets and communities; returns ids by name."""
    district = District(code=DEMO_DISTRICT[0], name=DEMO_DISTRICT[1])
    await district.save()
    communities: dict[str, int] = {}
    streets: dict[str, int] = {}
    for street_name, (street_code, community_names) in DEMO_STREETS.items():
        street = Street(district=district.id, code=street_code, name=street_name)
        await street.save()
        streets[street_name] = street.id
        rows = [
            Community(street=street.id, code=f"{street_code}{i + 1:03d}", name=name)
            for i, name in enumerate(community_names)
        ]
        await Community.insert(*rows)
        for row in rows:
            communities[row.name] = row.id
    return {"district": district.id, "streets": streets, "communities": communities}
