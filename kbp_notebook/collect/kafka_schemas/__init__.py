"""Kafka message schemas that kafka-python 3 does not ship (data files, no code).

Copied unchanged from ``common/message/`` of Apache Kafka's ``kafka-clients``
4.1.2 jar (Apache License 2.0, header kept in each file): ConsumerGroupDescribe
(KIP-848), ShareGroupDescribe and DescribeShareGroupOffsets (KIP-932),
StreamsGroupDescribe (KIP-1071).
``kbp_notebook.collect._groups`` declares request classes from them.
"""
