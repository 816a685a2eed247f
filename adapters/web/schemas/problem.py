"""The error body every failure uses: application/problem+json."""

from __future__ import annotations

from marshmallow import Schema, fields


class ProblemSchema(Schema):
    type = fields.String(metadata={"example": "https://creditctl.dev/problems/http/422"})
    title = fields.String()
    status = fields.Integer()
    detail = fields.String()
    errors = fields.Dict(
        keys=fields.String(),
        values=fields.List(fields.String()),
        metadata={"example": {"amount": ["Must be greater than 0.00."]}},
    )
    request_id = fields.String()
