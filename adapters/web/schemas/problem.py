"""The error body every failure uses: application/problem+json, every member in every answer."""

from __future__ import annotations

from marshmallow import Schema, fields


class ProblemSchema(Schema):
    type = fields.String(required=True, metadata={"example": "https://creditctl.dev/problems/http/422"})
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    detail = fields.String(required=True)
    errors = fields.Dict(
        required=True,
        keys=fields.String(),
        values=fields.List(fields.String()),
        metadata={"example": {"amount": ["Must be greater than 0.00."]}},
    )
    request_id = fields.String(required=True)
