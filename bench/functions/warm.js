// Deployed first so the shared engine is built and compiled before the
// deploy that is timed (the target is for a JavaScript function after the
// first one).
import { serve } from 'selfdb';

serve(() => new Response('warm'));
