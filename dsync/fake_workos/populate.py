"""Plausible directory contents for demos, load tests and property tests.

Emits events in the order WorkOS uses for an initial sync (users, then groups, then memberships),
so a freshly populated directory exercises the same path as a real customer onboarding.
"""

from __future__ import annotations

import random
import re

from dsync.fake_workos.model import DirectoryModel

__all__ = ["DEPARTMENTS", "FIRST_NAMES", "GROUP_NAMES", "LAST_NAMES", "populate"]

FIRST_NAMES = (
    "Ada", "Aiko", "Alejandro", "Amara", "Anders", "Ana", "Arjun", "Beatriz", "Chen", "Chloe",
    "Dmitri", "Elena", "Emeka", "Fatima", "Finn", "Grace", "Hana", "Hiroshi", "Ines", "Isaac",
    "Jamal", "Julia", "Kai", "Kwame", "Lars", "Leila", "Lucas", "Maya", "Mateo", "Mei",
    "Nadia", "Noah", "Olga", "Omar", "Priya", "Rafael", "Sade", "Sofia", "Tariq", "Yara",
)  # fmt: skip
LAST_NAMES = (
    "Abe", "Adeyemi", "Andersson", "Bauer", "Chowdhury", "Costa", "Davis", "Dubois", "Fernandez", "Garcia",
    "Haddad", "Ivanova", "Jensen", "Kim", "Kowalski", "Lee", "Lopez", "Mendes", "Müller", "Nakamura",
    "Nguyen", "O'Brien", "Okafor", "Patel", "Petrov", "Rossi", "Santos", "Schmidt", "Singh", "Smith",
    "Tanaka", "Taylor", "Van der Berg", "Wang", "Williams", "Yilmaz", "Zhang", "Zulu", "Khan", "Moreau",
)  # fmt: skip
#: Department -> job titles (the department doubles as a group name, as with most IdP setups).
DEPARTMENTS: dict[str, tuple[str, ...]] = {
    "Engineering": ("Software Engineer", "Senior Software Engineer", "Staff Engineer", "Engineering Manager"),
    "Sales": ("Account Executive", "Sales Development Rep", "Sales Manager"),
    "Marketing": ("Product Marketing Manager", "Content Strategist", "Growth Marketer"),
    "Finance": ("Accountant", "Financial Analyst", "Controller"),
    "Customer Support": ("Support Engineer", "Support Specialist", "Support Lead"),
    "Product": ("Product Manager", "Senior Product Manager"),
    "Design": ("Product Designer", "UX Researcher"),
    "People Ops": ("HR Business Partner", "Recruiter"),
    "Legal": ("Counsel", "Paralegal"),
    "IT": ("IT Administrator", "Systems Engineer"),
}
GROUP_NAMES = (
    *DEPARTMENTS,
    "Okta Admins",
    "All Staff",
    "Contractors",
    "Security Champions",
    "On-Call",
    "Leadership",
)

_NOT_EMAIL_SAFE = re.compile(r"[^a-z0-9]+")


def _email_local(first: str, last: str) -> str:
    def clean(part: str) -> str:
        ascii_part = part.lower().replace("ü", "u")
        return _NOT_EMAIL_SAFE.sub("", ascii_part)

    return f"{clean(first)}.{clean(last)}"


def populate(
    model: DirectoryModel,
    directory_id: str,
    *,
    users: int,
    groups: int,
    memberships_per_user: tuple[int, int] = (1, 3),
    rng: random.Random,
) -> None:
    """Add ``users`` users and ``groups`` groups to a directory and wire up memberships.

    Emails are ``first.last@<directory domain>`` (numbered on collision, including collisions
    with users already in the directory); each user gets a department and job title in
    ``custom_attributes`` and, where a group of that department exists, is a member of it.
    Each user ends up in ``memberships_per_user`` groups (inclusive range, capped by ``groups``).
    """
    low, high = memberships_per_user
    if users < 0 or groups < 0 or not 0 <= low <= high:
        raise ValueError("users/groups must be >= 0 and memberships_per_user a range 0 <= low <= high")
    domain = model.get_directory(directory_id)["domains"][0]["domain"]

    taken_emails = {u["email"].lower() for u in model.users(directory_id) if u["email"]}
    user_ids: list[str] = []
    departments: dict[str, str] = {}
    for _ in range(users):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        local = _email_local(first, last)
        email, n = f"{local}@{domain}", 1
        while email in taken_emails:
            n += 1
            email = f"{local}{n}@{domain}"
        taken_emails.add(email)
        department = rng.choice(list(DEPARTMENTS))
        title = rng.choice(DEPARTMENTS[department])
        user = model.create_user(
            directory_id,
            first_name=first,
            last_name=last,
            email=email,
            job_title=title,
            custom_attributes={"department": department, "job_title": title},
        )
        user_ids.append(user["id"])
        departments[user["id"]] = department

    taken_names = {g["name"] for g in model.groups(directory_id)}
    group_ids: dict[str, str] = {}
    candidates = iter(GROUP_NAMES)
    counter = 0
    while len(group_ids) < groups:
        name = next(candidates, None)
        if name is None:
            counter += 1
            name = f"Project Team {counter:03d}"
        if name in taken_names:
            continue
        taken_names.add(name)
        group_ids[name] = model.create_group(directory_id, name=name)["id"]

    if not group_ids:
        return
    all_groups = list(group_ids.values())
    for user_id in user_ids:
        count = min(rng.randint(low, high), len(all_groups))
        if count == 0:
            continue
        chosen: list[str] = []
        home = group_ids.get(departments[user_id])
        if home is not None:
            chosen.append(home)
        others = [g for g in all_groups if g != home]
        chosen.extend(rng.sample(others, count - len(chosen)))
        for group_id in chosen:
            model.add_user_to_group(group_id, user_id)
