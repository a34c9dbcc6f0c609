"""API views: read the request, call one domain function, serialise the result."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from recommender import health


class HealthSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    database = serializers.CharField()
    broker = serializers.CharField()
    counts = serializers.DictField(child=serializers.IntegerField())


class HealthView(APIView):
    """Whether the database and the broker answer, and how much data there is."""

    authentication_classes = []
    permission_classes = []

    @extend_schema(responses=HealthSerializer)
    def get(self, request):
        report = health.check()
        return Response(HealthSerializer(report).data, status=200 if report.ok else 503)
