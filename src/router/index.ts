/**
 * The application-side routing API: follow a migration's route and pick old or new per key.
 * See docs/routing.md.
 */
export {
  createRouter,
  type CreateRouterOptions,
  type Router,
  type RouteChangeEvent,
  type RouterMode,
} from './app-router';
export { bucketOf, sideFor, type Side } from './hash';
export {
  ROUTE_CHANNEL,
  ROUTE_TABLE,
  getRoute,
  type Route,
  type RouteNotice,
  type RouteChange,
} from './store';
