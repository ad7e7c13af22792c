'use strict';
// The built addon; loading throws when it was not built (no compiler at install time), and the caller falls back.
module.exports = require('./build/Release/splice.node');
