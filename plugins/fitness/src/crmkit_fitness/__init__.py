"""crmkit-fitness: the gym and studio edition of crmkit.

from crmkit import CRM
from crmkit_fitness import FitnessConfig, FitnessPlugin, fitness

crm = CRM("sqlite:///club.db", plugins=[FitnessPlugin(FitnessConfig(expiring_days=21))])
plan = fitness(crm).create_plan(  # the plan's record: {"id": 1, "name": "Monthly 8", "price": "49.00", ...}
    {"name": "Monthly 8", "duration_days": 30, "price": "49.00", "sessions": 8})
"""

from crmkit_fitness.config import FitnessConfig
from crmkit_fitness.plugin import FitnessPlugin
from crmkit_fitness.service import Fitness, fitness

__all__ = ["Fitness", "FitnessConfig", "FitnessPlugin", "fitness"]
