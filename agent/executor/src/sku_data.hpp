#pragma once

// sku-data.json, embedded at build time (the Makefile generates its definition).
extern const char kSkuDataJson[];
