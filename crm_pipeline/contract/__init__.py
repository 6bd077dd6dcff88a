"""The data contract: entities, their columns and keys, and where files land."""

from crm_pipeline.contract.entities import ENTITIES, get_entity
from crm_pipeline.contract.layout import FORMATS, FilePlace, classify, is_in_progress
from crm_pipeline.contract.model import Column, Entity

__all__ = ["ENTITIES", "FORMATS", "Column", "Entity", "FilePlace", "classify", "get_entity", "is_in_progress"]
