"""The HSDS 3.0 API of the provider directory: public, read-only, no personal data."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, get
from litestar.params import FromPath, FromQuery, QueryParameter

from marketplace.pagination import MAX_PAGE
from providers import hsds

PageNumber = Annotated[int, QueryParameter(ge=1, le=MAX_PAGE, description="Page number of paginated result.")]
PerPage = Annotated[
    int, QueryParameter(ge=1, le=hsds.MAX_PER_PAGE, description="Number of results in a page.")
]
Search = Annotated[str, QueryParameter(description="Full text search.")]
Flag = Annotated[bool, QueryParameter(description="Return fully nested objects.")]
Json = dict[str, Any]


class HsdsApi(Controller):
    """Open Referral HSDS 3.0: https://docs.openreferral.org/en/latest/hsds/api_reference.html"""

    path = "/hsds"
    tags = ["hsds"]

    @get("/", summary="HSDS: about this API")
    async def about(self) -> Json:
        return hsds.about()

    @get("/services", summary="HSDS: services (offerings of verified organizations)")
    async def services(
        self,
        *,
        search: Search = "",
        page: PageNumber = 1,
        per_page: PerPage = hsds.DEFAULT_PER_PAGE,
        taxonomy_term_id: FromQuery[str | None] = None,
        taxonomy_id: FromQuery[str | None] = None,
        organization_id: FromQuery[str | None] = None,
        modified_after: FromQuery[str | None] = None,
        full: Flag = False,
    ) -> Json:
        return await hsds.services(
            hsds.Query(
                search=search,
                page=page,
                per_page=per_page,
                taxonomy_term_id=taxonomy_term_id,
                taxonomy_id=taxonomy_id,
                organization_id=organization_id,
                modified_after=modified_after,
                full=full,
            )
        )

    @get("/services/{service_id:str}", summary="HSDS: one fully nested service")
    async def service(self, service_id: FromPath[str]) -> Json:
        return await hsds.service(service_id)

    @get("/organizations", summary="HSDS: organizations (volunteers appear as their team)")
    async def organizations(
        self,
        *,
        search: Search = "",
        page: PageNumber = 1,
        per_page: PerPage = hsds.DEFAULT_PER_PAGE,
        full: Flag = False,
        full_service: Flag = False,
    ) -> Json:
        query = hsds.Query(search=search, page=page, per_page=per_page, full=full, full_service=full_service)
        return await hsds.organizations(query)

    @get("/organizations/{organization_id:str}", summary="HSDS: one organization with its services")
    async def organization(self, organization_id: FromPath[str], full_service: Flag = False) -> Json:
        return await hsds.organization(organization_id, full_service=full_service)

    @get("/service_at_locations", summary="HSDS: services at the offices of their organizations")
    async def service_at_locations(
        self,
        *,
        search: Search = "",
        page: PageNumber = 1,
        per_page: PerPage = hsds.DEFAULT_PER_PAGE,
        taxonomy_term_id: FromQuery[str | None] = None,
        taxonomy_id: FromQuery[str | None] = None,
        organization_id: FromQuery[str | None] = None,
        modified_after: FromQuery[str | None] = None,
    ) -> Json:
        return await hsds.service_at_locations(
            hsds.Query(
                search=search,
                page=page,
                per_page=per_page,
                taxonomy_term_id=taxonomy_term_id,
                taxonomy_id=taxonomy_id,
                organization_id=organization_id,
                modified_after=modified_after,
            )
        )

    @get("/taxonomies", summary="HSDS: taxonomies (the service categories)")
    async def taxonomies(
        self, search: Search = "", page: PageNumber = 1, per_page: PerPage = hsds.DEFAULT_PER_PAGE
    ) -> Json:
        return await hsds.taxonomies(hsds.Query(search=search, page=page, per_page=per_page))

    @get("/taxonomies/{taxonomy_id:str}", summary="HSDS: one taxonomy")
    async def taxonomy(self, taxonomy_id: FromPath[str]) -> Json:
        return await hsds.taxonomy(taxonomy_id)

    @get("/taxonomy_terms", summary="HSDS: taxonomy terms (one per service category)")
    async def taxonomy_terms(
        self,
        *,
        search: Search = "",
        page: PageNumber = 1,
        per_page: PerPage = hsds.DEFAULT_PER_PAGE,
        taxonomy_id: FromQuery[str | None] = None,
        top_only: FromQuery[bool] = False,
        parent_id: FromQuery[str | None] = None,
    ) -> Json:
        query = hsds.Query(
            search=search,
            page=page,
            per_page=per_page,
            taxonomy_id=taxonomy_id,
            top_only=top_only,
            parent_id=parent_id,
        )
        return await hsds.taxonomy_terms(query)

    @get("/taxonomy_terms/{term_id:str}", summary="HSDS: one taxonomy term")
    async def taxonomy_term(self, term_id: FromPath[str]) -> Json:
        return await hsds.taxonomy_term(term_id)
