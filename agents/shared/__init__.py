"""Code more than one agent needs: Exchange knowledge and the Exchange clients.

Agents never import each other; what they share lives here.
"""
