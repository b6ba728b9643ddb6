import { Router } from 'express';
import { openApiDocument } from '../contract/openapi';
import { packageVersion } from '../../version';

/** Public: the OpenAPI 3.1 document of this broker's API, built once from the same schemas it validates with. */
export function openApiRoute(): Router {
  const router = Router();
  let document: unknown;
  router.get('/openapi.json', (_req, res) => {
    document ??= openApiDocument(packageVersion());
    res.setHeader('Cache-Control', 'public, max-age=300');
    res.json(document);
  });
  return router;
}
