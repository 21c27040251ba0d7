"""Latent MPC planners: CEM, iCEM, MPPI and gradient-based, behind one interface."""
