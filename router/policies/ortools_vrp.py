"""Baseline ``ortools-vrp``: OR-Tools' routing solver re-run on the pending orders every tick.

What an engineer would build first. Each tick, one pickup-and-delivery VRP:

- nodes: one start per rider (its position), one shared dummy end (zero cost: routes end
  anywhere), per order a pickup node at its shop and a delivery node at its drop-off;
- one vehicle per rider that can still depart within a shift and serves a shop with pending
  orders; its start cumul is ``max(now_s, free_s)`` (later if its next shift starts later);
- time dimension: transit = service at the origin node + travel time of the vehicle's mode, one
  registered matrix per mode; pickup cumul >= ``ready_s``; soft upper bound ``promised_s`` at the
  delivery with a lateness cost; waiting allowed (slack);
- capacity dimension: +size at the pickup, -size at the delivery, the rider's capacity;
- pickup and delivery paired (same vehicle, pickup first), allowed only for riders serving the
  shop, both nodes droppable at a large penalty;
- arc cost = the time transit (travel plus service), see ``_time_matrices``.

Only the first trip of each route can be committed, and only when the rider is free within the
tick and the solver has it leave now; its times are recomputed by the rules of DESIGN.md.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from ortools.constraint_solver import pywrapcp, routing_enums_pb2

from router.snapshot import NO_TIME, Decision, IntArray, PlannedTrip, Snapshot, depart_within_shift
from router.travel import distance_matrix_m, travel_s_matrices

LATENESS_COST_PER_S = 10  # cost of one second past promised_s, in arc-cost units (seconds)
DROP_PENALTY = 100_000_000  # per dropped node; above any plausible lateness plus travel cost


class OrToolsVrpPolicy:
    """Re-solve a pickup-and-delivery VRP each tick; commit the first trips that start now."""

    name = "ortools-vrp"

    def __init__(
        self,
        tick_s: int = 30,
        time_limit_s: float = 1.0,
        seed: int = 0,
        first_solution: str = "PARALLEL_CHEAPEST_INSERTION",
    ) -> None:
        if tick_s < 0:
            raise ValueError(f"tick_s: expected an integer >= 0, got {tick_s!r}")
        if not time_limit_s > 0:
            raise ValueError(f"time_limit_s: expected a number > 0, got {time_limit_s!r}")
        strategies = list(routing_enums_pb2.FirstSolutionStrategy.Value.keys())
        if first_solution not in strategies:
            raise ValueError(
                f"first_solution: expected a FirstSolutionStrategy name, got {first_solution!r}"
            )
        self.tick_s = int(tick_s)
        self.time_limit_s = float(time_limit_s)
        self.seed = int(seed)
        # PARALLEL_CHEAPEST_INSERTION, as in OR-Tools' own pickup-and-delivery sample: the
        # fair baseline. PATH_CHEAPEST_ARC extends one route at a time by its cheapest arc,
        # blind to lateness: with 100+ pending orders it loads a few riders with everything
        # and greedy descent does not repair that within 1 s (dark-store seed 1 at 18:00,
        # 128 orders, 21 riders, 1 s: objective 25.3M with 3 riders used vs 0.43M with all
        # 21 used).
        self.first_solution = first_solution

    def decide(self, snapshot: Snapshot) -> Decision:
        """Solve the tick's VRP and commit the first trips that should start now."""
        model = _Model(snapshot, self.tick_s)
        if model.n_orders == 0 or model.n_vehicles == 0:
            return model.unplanned_decision("no rider on shift serves its shop")
        solution = model.solve(self.time_limit_s, self.seed, self.first_solution)
        if solution is None:
            assert model.routing is not None
            status = routing_enums_pb2.RoutingSearchStatus.Value.Name(model.routing.status())
            return model.unplanned_decision(f"no solution from the routing solver ({status})")
        return model.decision(solution)


class _Model:
    """One tick's routing model: node arrays, matrices, and the OR-Tools objects."""

    def __init__(self, snapshot: Snapshot, tick_s: int) -> None:
        s = snapshot
        self.snapshot = s
        self.tick_s = tick_s
        self.reasons: dict[int, str] = {}
        order_shops = np.asarray(s.order_shops, dtype=np.int64)
        serves = np.asarray(s.rider_serves, dtype=np.bool_)
        capacities = np.asarray(s.rider_capacities, dtype=np.int64)
        sizes = np.asarray(s.order_sizes, dtype=np.int64)

        # Riders: start time, and whether any shift is left to depart in.
        rider_start_s = np.maximum(int(s.now_s), np.asarray(s.rider_free_s, dtype=np.int64))
        first_depart_s = np.array(
            [
                depart_within_shift(
                    int(rider_start_s[r]), s.rider_shift_starts_s[r], s.rider_shift_ends_s[r]
                )
                for r in range(s.n_riders)
            ],
            dtype=np.int64,
        )
        pending_shops = np.zeros(s.n_shops, dtype=np.bool_)
        pending_shops[order_shops] = True
        on_roster = (first_depart_s != NO_TIME) & (serves & pending_shops[None, :]).any(axis=1)
        self.vehicle_riders = np.flatnonzero(on_roster).astype(np.int64)

        # Orders some vehicle can carry (serves the shop, capacity); the rest get a reason.
        can_carry = serves[self.vehicle_riders][:, order_shops] & (
            capacities[self.vehicle_riders][:, None] >= sizes[None, :]
        )  # (n_vehicles, n_orders)
        carried = can_carry.any(axis=0)
        for o in np.flatnonzero(~carried).tolist():
            any_serves = bool(serves[:, order_shops[o]].any())
            self.reasons[o] = (
                "capacity: no rider serving its shop can carry it"
                if any_serves
                and not bool((serves[:, order_shops[o]] & (capacities >= sizes[o])).any())
                else "no rider on shift serves its shop"
            )
        self.orders = np.flatnonzero(carried).astype(np.int64)
        self.can_carry = can_carry[:, self.orders]
        self.n_orders = int(self.orders.shape[0])
        self.n_vehicles = int(self.vehicle_riders.shape[0])
        self.routing: pywrapcp.RoutingModel | None = None
        if self.n_orders == 0 or self.n_vehicles == 0:
            return

        # Nodes: starts [0, V), end V, pickups [V+1, V+1+K), deliveries [V+1+K, V+1+2K).
        v_count, k_count = self.n_vehicles, self.n_orders
        self.end_node = v_count
        self.first_pickup = v_count + 1
        self.first_delivery = v_count + 1 + k_count
        n_nodes = v_count + 1 + 2 * k_count
        shops_k = order_shops[self.orders]
        lats = np.concatenate(
            [
                np.asarray(s.rider_lats)[self.vehicle_riders],
                [0.0],
                np.asarray(s.shop_lats)[shops_k],
                np.asarray(s.order_lats)[self.orders],
            ]
        )
        lons = np.concatenate(
            [
                np.asarray(s.rider_lons)[self.vehicle_riders],
                [0.0],
                np.asarray(s.shop_lons)[shops_k],
                np.asarray(s.order_lons)[self.orders],
            ]
        )
        self.travel_s = travel_s_matrices(
            distance_matrix_m(lats, lons, lats, lons, s.detour), s.speeds_mps
        )  # (n_modes, n_nodes, n_nodes), exactly the rule's travel times
        self.node_shops = np.full(n_nodes, -1, dtype=np.int64)
        self.node_shops[self.first_pickup : self.first_delivery] = shops_k

        ready_k = np.asarray(s.order_ready_s, dtype=np.int64)[self.orders]
        promised_k = np.asarray(s.order_promised_s, dtype=np.int64)[self.orders]
        modes_v = np.asarray(s.rider_modes, dtype=np.int64)[self.vehicle_riders]
        start_v = rider_start_s[self.vehicle_riders]
        # A rider whose next shift starts later is not asked to be at a shop before it
        # (travelling there may start earlier: the nearest served shop's travel time).
        rider_shop_s = self.travel_s[modes_v, np.arange(v_count), :][:, self.first_pickup :]
        served_k = self.can_carry
        nearest_shop_s = np.where(served_k, rider_shop_s[:, :k_count], np.iinfo(np.int64).max)
        start_v = np.maximum(
            start_v,
            first_depart_s[self.vehicle_riders] - int(s.pickup_s) - nearest_shop_s.min(axis=1),
        )
        horizon_s = int(max(start_v.max(), ready_k.max(), promised_k.max())) + 2 * 86_400

        manager = pywrapcp.RoutingIndexManager(
            n_nodes, v_count, list(range(v_count)), [self.end_node] * v_count
        )
        routing = pywrapcp.RoutingModel(manager)
        self.manager, self.routing = manager, routing
        solver = routing.solver()

        # One registered transit matrix per mode in use (matrices, not Python callbacks).
        matrices = _time_matrices(
            self.travel_s,
            self.node_shops,
            self.end_node,
            self.first_pickup,
            self.first_delivery,
            int(s.pickup_s),
            int(s.handoff_s),
        )
        transit_by_mode = {
            int(m): routing.RegisterTransitMatrix(matrices[int(m)].tolist())
            for m in np.unique(modes_v)
        }
        transits = [transit_by_mode[int(m)] for m in modes_v]
        for v in range(v_count):
            routing.SetArcCostEvaluatorOfVehicle(transits[v], v)
        routing.AddDimensionWithVehicleTransits(transits, horizon_s, horizon_s, False, "time")
        time = routing.GetDimensionOrDie("time")
        self.time = time

        demands = np.zeros(n_nodes, dtype=np.int64)
        demands[self.first_pickup : self.first_delivery] = sizes[self.orders]
        demands[self.first_delivery :] = -sizes[self.orders]
        demand_index = routing.RegisterUnaryTransitVector(demands.tolist())
        routing.AddDimensionWithVehicleCapacity(
            demand_index, 0, capacities[self.vehicle_riders].tolist(), True, "load"
        )

        for v in range(v_count):
            time.CumulVar(routing.Start(v)).SetRange(int(start_v[v]), int(start_v[v]))
        all_vehicles: list[bool] = np.all(served_k, axis=0).tolist()
        for k in range(k_count):
            pickup = manager.NodeToIndex(self.first_pickup + k)
            delivery = manager.NodeToIndex(self.first_delivery + k)
            routing.AddPickupAndDelivery(pickup, delivery)
            solver.Add(routing.VehicleVar(pickup) == routing.VehicleVar(delivery))
            solver.Add(time.CumulVar(pickup) <= time.CumulVar(delivery))
            if not all_vehicles[k]:
                # SetAllowedVehiclesForIndex's SWIG wrapper rejects every Python sequence in
                # 9.15 (absl::Span<const int>), so restrict the vehicle var directly (-1 is
                # "unperformed", which the disjunction needs).
                allowed = [-1, *np.flatnonzero(served_k[:, k]).tolist()]
                routing.VehicleVar(pickup).SetValues(allowed)
                routing.VehicleVar(delivery).SetValues(allowed)
            time.CumulVar(pickup).SetMin(int(ready_k[k]))
            time.SetCumulVarSoftUpperBound(delivery, int(promised_k[k]), LATENESS_COST_PER_S)
            routing.AddDisjunction([pickup], DROP_PENALTY)
            routing.AddDisjunction([delivery], DROP_PENALTY)

    def solve(
        self, time_limit_s: float, seed: int, first_solution: str
    ) -> pywrapcp.Assignment | None:
        """Run the solver under the time limit; None if it found no solution."""
        assert self.routing is not None
        parameters = pywrapcp.DefaultRoutingSearchParameters()
        parameters.first_solution_strategy = routing_enums_pb2.FirstSolutionStrategy.Value.Value(
            first_solution
        )
        # AUTOMATIC is greedy descent: it stops at the first local optimum, usually well
        # before the limit. GUIDED_LOCAL_SEARCH never stops early, so it would always spend
        # the full limit on every one of the ~2,800 ticks of a simulated day.
        parameters.local_search_metaheuristic = routing_enums_pb2.LocalSearchMetaheuristic.AUTOMATIC
        parameters.time_limit.FromMilliseconds(max(1, round(time_limit_s * 1000)))
        # The routing search parameters have no seed; the solver's generator (used by its
        # randomised operators) is reseeded instead. The search is then deterministic unless
        # the time limit cuts it short.
        self.routing.solver().ReSeed(seed)
        return self.routing.SolveWithParameters(parameters)

    def unplanned_decision(self, reason: str) -> Decision:
        """A decision with no trips: every order gets its own reason or ``reason``."""
        return Decision(
            reasons={o: self.reasons.get(o, reason) for o in range(self.snapshot.n_orders)}
        )

    def decision(self, solution: pywrapcp.Assignment) -> Decision:
        """First trip of every route; committed when the rider is free and should go now."""
        assert self.routing is not None
        s = self.snapshot
        decision = Decision(reasons=dict(self.reasons))
        go_by_s = int(s.now_s) + self.tick_s
        planned: set[int] = set()
        committed: set[int] = set()
        for v in range(self.n_vehicles):
            rider = int(self.vehicle_riders[v])
            nodes = self._route_nodes(solution, v)
            if not nodes or not self.first_pickup <= nodes[0] < self.first_delivery:
                continue  # empty route (a route cannot begin with a delivery)
            pickups, deliveries = self._first_trip(nodes)
            orders_k = [n - self.first_pickup for n in pickups]
            trip_orders = self.orders[[n - self.first_delivery for n in deliveries]]
            planned.update(
                self.orders[
                    [n - self.first_pickup for n in nodes if n < self.first_delivery]
                ].tolist()
            )
            mode = int(s.rider_modes[rider])
            shop = int(self.node_shops[pickups[0]])
            # The solver's plan: the rider leaves so as to reach the shop by the earliest
            # time its last pickup of the bundle can start.
            last_pickup_s = int(
                solution.Min(self.time.CumulVar(self.manager.NodeToIndex(pickups[-1])))
            )
            start_s = int(solution.Min(self.time.CumulVar(self.routing.Start(v))))
            planned_leave_s = max(start_s, last_pickup_s - int(self.travel_s[mode, v, pickups[0]]))
            trip = self._rule_trip(v, rider, shop, pickups[0], deliveries, trip_orders)
            size = int(np.asarray(s.order_sizes)[self.orders[orders_k]].sum())
            valid = (
                trip is not None
                and bool(s.rider_serves[rider, shop])
                and size <= int(s.rider_capacities[rider])
            )
            free = int(s.rider_free_s[rider]) <= go_by_s
            go = planned_leave_s <= go_by_s
            commit = valid and free and go
            if trip is not None:
                decision.trips.append(replace(trip, committed=commit))
            if commit:
                committed.update(trip_orders.tolist())
                continue
            if not valid:
                reason = "outside shifts" if trip is None else "capacity"
            elif not free:
                reason = f"no rider free until {int(s.rider_free_s[rider])}"
            else:
                reason = f"waiting: tentative trip of rider {int(s.rider_keys[rider])}"
                reason += f" leaves at {planned_leave_s}"
            for o in trip_orders.tolist():
                decision.reasons[o] = reason
        for v in range(self.n_vehicles):
            rider_key = int(s.rider_keys[int(self.vehicle_riders[v])])
            for node in self._route_nodes(solution, v):
                if self.first_pickup <= node < self.first_delivery:
                    o = int(self.orders[node - self.first_pickup])
                    if o not in committed:
                        decision.reasons.setdefault(o, f"waiting: later trip of rider {rider_key}")
        for o in self.orders.tolist():
            if o not in planned:
                decision.reasons[o] = "dropped by the routing solver"
        return decision

    def _route_nodes(self, solution: pywrapcp.Assignment, v: int) -> list[int]:
        """The nodes a vehicle visits, start and end excluded."""
        assert self.routing is not None
        nodes = []
        index = solution.Value(self.routing.NextVar(self.routing.Start(v)))
        while not self.routing.IsEnd(index):
            nodes.append(self.manager.IndexToNode(index))
            index = solution.Value(self.routing.NextVar(index))
        return nodes

    def _first_trip(self, nodes: list[int]) -> tuple[list[int], list[int]]:
        """The route's first trip: its leading pickups at one shop, then their deliveries.

        Pickups that follow a pickup at another shop or a delivery belong to later trips, and
        so do their deliveries even when the route interleaves them with this trip's.
        """
        shop = self.node_shops[nodes[0]]
        pickups = []
        for node in nodes:
            if not (self.first_pickup <= node < self.first_delivery) or (
                self.node_shops[node] != shop
            ):
                break
            pickups.append(node)
        picked = {node - self.first_pickup for node in pickups}
        deliveries = [
            n for n in nodes if n >= self.first_delivery and n - self.first_delivery in picked
        ]
        return pickups, deliveries

    def _rule_trip(
        self,
        v: int,
        rider: int,
        shop: int,
        pickup_node: int,
        deliveries: list[int],
        trip_orders: IntArray,
    ) -> PlannedTrip | None:
        """The trip with the times of the rules (not the solver's cumuls); None if no shift."""
        s = self.snapshot
        mode = int(s.rider_modes[rider])
        travel = self.travel_s[mode]
        leave_s = max(int(s.now_s), int(s.rider_free_s[rider]))
        arrive_s = leave_s + int(travel[v, pickup_node])
        ready_s = int(np.asarray(s.order_ready_s)[trip_orders].max())
        depart_s = int(
            depart_within_shift(
                max(arrive_s, ready_s) + int(s.pickup_s),
                s.rider_shift_starts_s[rider],
                s.rider_shift_ends_s[rider],
            )
        )
        if depart_s == NO_TIME:
            return None
        delivered = np.empty(len(deliveries), dtype=np.int64)
        at_s, previous = depart_s, pickup_node
        for j, node in enumerate(deliveries):
            at_s += int(travel[previous, node]) + int(s.handoff_s)
            delivered[j] = at_s
            previous = node
        return PlannedTrip(
            rider=rider,
            shop=shop,
            orders=np.asarray(trip_orders, dtype=np.int64),
            leave_s=leave_s,
            arrive_shop_s=arrive_s,
            depart_s=depart_s,
            delivered_s=delivered,
            committed=False,
        )


def _time_matrices(
    travel_s: IntArray,
    node_shops: IntArray,
    end_node: int,
    first_pickup: int,
    first_delivery: int,
    pickup_s: int,
    handoff_s: int,
) -> IntArray:
    """Time transits by mode: service at the origin node plus travel; zero into the end.

    ``pickup_s`` is charged on leaving a pickup node, except towards another pickup at the same
    shop: a bundle of one shop pays it once, as the rules say, and ``depart = max(arrive,
    ready of the bundle) + pickup_s`` is exact for pickups that follow each other. (A route that
    returns to a shop later pays it again, which is also right: that is a new trip.) Used as the
    arc cost too, so the cost is the rider's busy time: travel plus the service it implies.
    """
    n_nodes = travel_s.shape[1]
    service_s = np.zeros(n_nodes, dtype=np.int64)
    service_s[first_pickup:first_delivery] = pickup_s
    service_s[first_delivery:] = handoff_s
    transit = travel_s + service_s[None, :, None]
    same_shop = (node_shops[:, None] == node_shops[None, :]) & (node_shops[:, None] >= 0)
    transit[:, same_shop] -= pickup_s
    transit[:, :, end_node] = 0
    return transit
